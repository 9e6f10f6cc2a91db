from django.urls import path

from . import journey_map, views

app_name = "insights-api"

urlpatterns = [
    path("contacts/<int:pk>/360/", views.Contact360View.as_view(), name="contact-360"),
    # After journeys' router (config/urls.py): /journeys/{slug}/ is its, /journeys/{slug}/map/ ours.
    path("journeys/<slug:slug>/map/", journey_map.JourneyMapView.as_view(), name="journey-map"),
    path(
        "journeys/<slug:slug>/map/stages/<slug:stage>/",
        journey_map.StageMapView.as_view(),
        name="journey-map-stage",
    ),
    path(
        "journeys/<slug:slug>/map/touchpoints/<slug:touchpoint>/",
        journey_map.TouchpointMapView.as_view(),
        name="journey-map-touchpoint",
    ),
]
