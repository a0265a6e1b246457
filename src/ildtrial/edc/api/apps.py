from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "ildtrial.edc.api"
    label = "api"
    verbose_name = "REST API"
