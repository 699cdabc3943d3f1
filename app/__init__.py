"""The demo todo app: OIDC login against the issuer and todos read over Neon's SQL-over-HTTP."""
