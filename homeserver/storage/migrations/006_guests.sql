-- Guest accounts (register?kind=guest); an upgrade to a full account clears the flag.
ALTER TABLE users ADD COLUMN is_guest BOOLEAN NOT NULL DEFAULT FALSE
