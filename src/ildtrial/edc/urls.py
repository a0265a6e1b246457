"""Root URL configuration."""

from django.urls import include, path

from ildtrial.edc.accounts.views import set_language
from ildtrial.edc.study.views import home

urlpatterns = [
    path("", home, name="home"),
    path("accounts/", include("ildtrial.edc.accounts.urls")),
    path("protocol/", include("ildtrial.edc.study.urls")),
    path("audit/", include("ildtrial.edc.audit.urls")),
    path("participants/", include("ildtrial.edc.participants.urls")),
    path("visits/", include("ildtrial.edc.visits.urls")),
    path("randomization/", include("ildtrial.edc.randomization.urls")),
    path("data/", include("ildtrial.edc.crfs.urls")),
    path("safety/", include("ildtrial.edc.safety.urls")),
    path("reports/", include("ildtrial.edc.reports.urls")),
    path("cell-product/", include("ildtrial.edc.cellproduct.urls")),
    path("api/", include("ildtrial.edc.api.urls")),
    path("i18n/setlang/", set_language, name="set_language"),
]
