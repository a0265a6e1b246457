"""Root URL configuration."""

from django.urls import include, path

from ildtrial.edc.accounts.views import set_language
from ildtrial.edc.study.views import home

urlpatterns = [
    path("", home, name="home"),
    path("accounts/", include("ildtrial.edc.accounts.urls")),
    path("protocol/", include("ildtrial.edc.study.urls")),
    path("audit/", include("ildtrial.edc.audit.urls")),
    path("i18n/setlang/", set_language, name="set_language"),
]
