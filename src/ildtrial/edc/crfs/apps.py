from django.apps import AppConfig


class CrfsConfig(AppConfig):
    name = "ildtrial.edc.crfs"
    label = "crfs"
    verbose_name = "Case report forms"
