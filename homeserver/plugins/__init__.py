"""Plugins: discovery and installation, sandboxed processes, hooks, capability tokens."""
