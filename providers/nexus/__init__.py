"""Sonatype Nexus Repository 3: model.py (pure) and provider.py (dynamic providers)."""
