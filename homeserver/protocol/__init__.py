"""The pure protocol layer: canonical JSON, IDs, events, signing, auth rules, state resolution.

Nothing here does I/O, reads a clock or imports another part of Parley (`make lint` checks it)."""
