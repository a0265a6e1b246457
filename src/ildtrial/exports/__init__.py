"""Exports of the trial data in submission and exchange formats.

* :mod:`ildtrial.exports.sdtm` — SDTM IG 3.4 tabulation datasets built from the raw EDC frames;
* :mod:`ildtrial.exports.adam` — the ADaM datasets of :mod:`ildtrial.datasets` with their metadata;
* :mod:`ildtrial.exports.xpt` — SAS transport v5 files (what a regulator's tools read);
* :mod:`ildtrial.exports.define` — Define-XML 2.1 describing the datasets;
* :mod:`ildtrial.exports.conformance` — our own checks of the file rules reviewers apply first;
* :mod:`ildtrial.exports.odm`, :mod:`ildtrial.exports.fhir` — ODM and FHIR exchange formats.

Nothing is imported here, so importing one export never pulls in the others (or Django).
"""
