"""The trial's rules as plain Python: no Django import anywhere below this package.

Keeping the rules free of the web framework lets the same code serve the pages, the
command line, the API, the simulator and the analysis, and lets it be tested without a
database.
"""
