from django.apps import AppConfig


class CellProductConfig(AppConfig):
    name = "ildtrial.edc.cellproduct"
    label = "cellproduct"
    verbose_name = "Cell product"
