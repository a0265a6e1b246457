from django.urls import path

from ildtrial.edc.randomization import views

app_name = "randomization"
urlpatterns = [path("", views.allocation_list, name="list")]
