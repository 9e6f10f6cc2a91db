import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

from config.process import tune_gc

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# Django imports the URLconf (views, serializers, the API schema's classes: ~17,000 objects) at
# the first request; import it now, so the freeze below covers it too.
_url_patterns = get_resolver().url_patterns
tune_gc()
