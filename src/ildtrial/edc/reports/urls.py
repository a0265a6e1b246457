"""Statistical report pages, mounted at /reports/."""

from django.urls import path

from ildtrial.edc.reports import views

app_name = "reports"
urlpatterns = [
    path("", views.index, name="index"),
    path("statistical/", views.statistical_html, name="statistical"),
    path("statistical.pdf", views.statistical_pdf, name="statistical_pdf"),
]
