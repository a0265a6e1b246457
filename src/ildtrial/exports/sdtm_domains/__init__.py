"""SDTM domain builders (pure pandas), one module per group of domains; see :mod:`ildtrial.exports.sdtm`."""
