"""The one-node cluster: controllers, a kubelet and a NodePort proxy, all API clients."""
