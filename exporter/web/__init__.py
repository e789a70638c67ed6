"""The Flask web service: app factory, auth, JSON errors and the REST API blueprints."""
