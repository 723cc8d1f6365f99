"""An embedded stand-in for the Kubernetes API server (apiserver/) and a local pod runner
(runner/) that `make run` uses to bring the system up on a laptop."""
