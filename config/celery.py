"""The Celery application (cookiecutter-django layout)."""

import os

from celery import Celery
from celery.signals import worker_process_init

from config.process import tune_gc

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("safar")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _tune_worker_gc(**kwargs):
    # Each pool process, once the application has loaded (config/process.py).
    tune_gc()
