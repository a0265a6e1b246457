"""Cell product: donors, lots and their release, the stock ledger, bag preparation, bedside check, traceability."""
