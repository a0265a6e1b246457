from django.urls import path

from ildtrial.edc.cellproduct import views

app_name = "cellproduct"
urlpatterns = [
    path("", views.to_prepare, name="to_prepare"),
    path("prepare/<int:pk>/<str:visit_code>/", views.prepare, name="prepare"),
    path("bags/<str:bag_id>/label/", views.label, name="label"),
    path("lots/", views.lots, name="lots"),
    path("lots/<int:pk>/", views.lot, name="lot"),
    path("lots/<int:pk>/recall/", views.lot_recall, name="lot_recall"),
    path("lots/<int:pk>/recall.csv", views.lot_recall_csv, name="lot_recall_csv"),
    path("donors/<int:pk>/recall/", views.donor_recall, name="donor_recall"),
    path("donors/<int:pk>/recall.csv", views.donor_recall_csv, name="donor_recall_csv"),
    path("ledger/", views.ledger, name="ledger"),
    path("ledger/correct/", views.correct, name="correct"),
    path("bedside/", views.bedside, name="bedside"),
    path("participants/<int:pk>/", views.trace, name="trace"),
    path("participants/<int:pk>/bags.csv", views.trace_csv, name="trace_csv"),
]
