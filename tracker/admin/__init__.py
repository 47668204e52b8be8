"""The admin back office: ``/admin`` (sign-in, figures, ledger, corrections, campaigns)."""
