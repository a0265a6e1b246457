"""Users, roles, sites and the authentication rules (Argon2, lockout, TOTP, idle expiry)."""
