"""Close CRM: typed models, the HTTP client and the cached catalog."""
