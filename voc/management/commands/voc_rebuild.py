from django.core.management.base import BaseCommand

from voc.services import analyses_rebuild


class Command(BaseCommand):
    help = "Analyse every stored customer text again (after a change to the theme dictionary); corrections are kept."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=500)

    def handle(self, *args, batch, **options):
        def progress(done, seconds):
            if options["verbosity"] > 1:
                self.stdout.write(f"{done:,} analysed in {seconds:.1f} s")

        done = analyses_rebuild(batch=batch, progress=progress)
        self.stdout.write(self.style.SUCCESS(f"{done:,} texts analysed again."))
