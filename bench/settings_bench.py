"""Settings for bench/crm_bench.py: production settings plus a bare view for the floor.

Everything else (DEBUG, SECRET_KEY, DATABASE_URL, ALLOWED_HOSTS...) comes from the environment
as in production; crm_bench.py sets it for the web server it starts.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bench_urls"
