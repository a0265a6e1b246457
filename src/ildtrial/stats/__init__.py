"""Pure numerics for the trial's analyses (numpy/scipy/statsmodels; no Django)."""
