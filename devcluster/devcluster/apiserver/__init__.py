"""An asyncio stand-in for kube-apiserver."""
