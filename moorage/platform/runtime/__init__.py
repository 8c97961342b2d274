"""Runtimes run releases: ``LocalRuntime`` (the embedded default) and ``KubernetesRuntime``."""
