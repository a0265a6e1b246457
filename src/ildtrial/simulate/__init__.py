"""Trial simulation for NCT02594839: virtual patients and the design tool's simulator core.

* :mod:`ildtrial.simulate.patients`: the virtual-patient model (screening candidates for
  the real eligibility engine, outcome trajectories, adverse events), parametrised by
  ``parameters.yaml`` (every value with its unit and source).
* :mod:`ildtrial.simulate.design`: operating characteristics of the design (power, type I
  error, CI coverage, SAE comparison, stopping-rule probability) from thousands of
  simulated trials analysed with the batched MMRM (:mod:`ildtrial.stats.mmrm_batch`).

Pure numpy/scipy/pandas; no Django and no database.
"""

from ildtrial.simulate.patients import (
    ParameterError,
    SimulationParameters,
    VirtualCandidate,
    default_parameters,
    generate_candidates,
    load_parameters,
    simulate_adverse_events,
    simulate_trajectories,
)

__all__ = [
    "ParameterError",
    "SimulationParameters",
    "VirtualCandidate",
    "default_parameters",
    "generate_candidates",
    "load_parameters",
    "simulate_adverse_events",
    "simulate_trajectories",
]
