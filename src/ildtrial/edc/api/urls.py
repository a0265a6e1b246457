"""/api/: the ninja API (with /api/openapi.json and /api/docs) and the token page."""

from django.urls import path

from ildtrial.edc.api import views
from ildtrial.edc.api.rest import api

urlpatterns = [
    path("tokens/", views.token_list, name="api_tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="api_token_revoke"),
    path("", api.urls),
]
