"""Stand-ins for the commands a k3s node offers over SSH: systemctl, journalctl, k3s, crictl, kubectl, ctr.

They run *on a homelab node* (inside its sshd's mount namespace), started by the small
wrapper scripts `tests/homelab/nodes.py` writes into the node root; the wrappers set
HOMELAB_NODE_ROOT, so every tool finds the node's own files and state. What they model of
k3s + containerd, and what they do not, is listed in `tests/homelab/nodes.py`.
"""
