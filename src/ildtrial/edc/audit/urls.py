from django.urls import path

from ildtrial.edc.audit import views

app_name = "audit"
urlpatterns = [
    path("", views.audit_log, name="log"),
    path("export.csv", views.audit_export, name="export"),
    path("record/<str:model>/<str:pk>/", views.record_history, name="history"),
]
