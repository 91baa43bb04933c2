"""Talking to other servers once events and EDUs exist: the persisted per-destination queue and
its sender (`sender.py`), what goes into it (`outbound.py`), the EDUs other servers send us
(`inbound_edus.py`), and how these hook into the services (`wiring.py`)."""
