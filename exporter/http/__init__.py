"""What both HTTP adapters share: the app factory, the error envelope, authentication, the host and
cross-site checks, input hygiene and parameter validation. Imports read models and services, never an
adapter."""
