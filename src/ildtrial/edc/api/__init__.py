"""REST API (django-ninja) over the same services, permissions, site scoping and blinding as the pages."""
