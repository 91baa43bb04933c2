"""The Matrix Application Service API: registrations, identity assertion, transactions."""
