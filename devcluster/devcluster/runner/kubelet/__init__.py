"""The kubelet: runs each pod's containers as local processes."""
