"""The local homelab: real registries and SSH servers, and doubles for what cannot run here.

Nothing in the product imports this package.
"""
