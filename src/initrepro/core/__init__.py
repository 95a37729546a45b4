"""The machinery: claim records, verdict rules, registered designs, the stage runner, reports."""
