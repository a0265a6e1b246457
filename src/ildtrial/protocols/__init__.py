"""Protocol files shipped with the platform (one YAML file per protocol version)."""
