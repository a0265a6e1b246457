from django.urls import path

from ildtrial.edc.visits import views

app_name = "visits"
urlpatterns = [
    path("due/", views.due, name="due"),
    path("participant/<int:pk>/", views.calendar, name="calendar"),
    path("participant/<int:pk>/record/", views.record, name="record"),
    path("participant/<int:pk>/missed/", views.missed, name="missed"),
    path("participant/<int:pk>/unscheduled/", views.unscheduled, name="unscheduled"),
    path("participant/<int:pk>/visits.ics", views.icalendar, name="ics"),
]
