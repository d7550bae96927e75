"""A k3s node's registries.yaml: model.py (pure) and provider.py (over SSH)."""
