import hashlib
from urllib.parse import urlencode

from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from core.text import clean_line, normalise_key

# Authors named before "et al." in a digest and on the trending page.
MAX_AUTHORS_SHOWN = 3


class PaperQuerySet(models.QuerySet):
    def visible(self):
        return self.filter(hidden=False)

    def trending(self):
        return self.visible().order_by("-ingested_at", "-upvotes", "-pk")

    def with_code(self):
        return self.exclude(code_url="")


class Paper(models.Model):
    class Source(models.TextChoices):
        HF_PAGE = "hf-page", "Trending papers page"
        HF_JSON = "hf-json", "Hugging Face daily papers"
        ARXIV_ATOM = "arxiv-atom", "arXiv API"
        MANUAL = "manual", "Added by hand"

    # NULL rather than "" for papers without an id, so the partial unique constraint skips them.
    arxiv_id = models.CharField(  # noqa: DJ001
        "arXiv id",
        max_length=32,
        null=True,
        blank=True,
        help_text="Without the version, e.g. 2404.16789. Empty when the source gave none.",
    )
    arxiv_version = models.PositiveSmallIntegerField("arXiv version", null=True, blank=True)
    title = models.CharField(max_length=500)
    title_key = models.CharField(
        max_length=255,
        editable=False,
        help_text="Normalised title; identifies papers that arrive without an arXiv id.",
    )
    abstract = models.TextField(blank=True)
    authors = models.JSONField(default=list, blank=True)
    abstract_url = models.URLField("abstract URL", max_length=500, blank=True)
    pdf_url = models.URLField("PDF URL", max_length=500, blank=True)
    published_on = models.DateField(null=True, blank=True)
    upvotes = models.PositiveIntegerField(default=0, help_text="The trending signal.")
    # What Hugging Face's daily papers say about a paper. Each import replaces them, as it
    # does upvotes: the stars and the comments grow, the summary is regenerated.
    ai_summary = models.TextField("AI summary", blank=True, help_text="Hugging Face's one line.")
    ai_keywords = models.JSONField(
        "AI keywords",
        default=list,
        blank=True,
        help_text="Hugging Face's keywords; they count as much as the title in matching.",
    )
    hf_url = models.URLField("Hugging Face page", max_length=500, blank=True)
    code_url = models.URLField("code", max_length=500, blank=True)
    code_stars = models.PositiveIntegerField("stars", null=True, blank=True)
    project_url = models.URLField("project page", max_length=500, blank=True)
    comments = models.PositiveIntegerField(
        null=True, blank=True, help_text="Comments on the Hugging Face page."
    )
    # What arXiv says.
    categories = models.JSONField(
        default=list, blank=True, help_text="arXiv categories, the primary one first."
    )
    arxiv_comment = models.TextField(
        "arXiv comment", blank=True, help_text="The authors' note: pages, figures, venue."
    )
    journal_ref = models.CharField("journal reference", max_length=500, blank=True)
    source = models.CharField(max_length=16, choices=Source, default=Source.MANUAL)
    ingested_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    hidden = models.BooleanField(
        default=False, help_text="Hidden papers are left out of the trending page and every digest."
    )
    featured = models.BooleanField(
        default=False, help_text="Featured papers rank higher in digests and on the trending page."
    )

    objects = PaperQuerySet.as_manager()

    class Meta:
        ordering = ["-ingested_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["arxiv_id"],
                condition=Q(arxiv_id__isnull=False),
                name="paper_unique_arxiv_id",
            ),
            models.UniqueConstraint(
                fields=["title_key"],
                condition=Q(arxiv_id__isnull=True),
                name="paper_unique_title_without_arxiv_id",
            ),
            models.CheckConstraint(
                condition=Q(arxiv_version__isnull=True) | Q(arxiv_version__gte=1),
                name="paper_arxiv_version_positive",
            ),
            models.CheckConstraint(condition=~Q(title=""), name="paper_title_not_empty"),
        ]
        indexes = [
            # Papers imported since a subscriber's previous digest, and the trending page.
            models.Index(fields=["-ingested_at"], name="paper_ingested_idx"),
            # The importer's lookup of a paper that arrives without an arXiv id.
            models.Index(fields=["title_key"], name="paper_title_key_idx"),
        ]

    def __str__(self):
        return self.title

    def save(self, *args, **kwargs):
        self.title = clean_line(self.title)
        self.title_key = normalise_key(self.title)
        if self.arxiv_id == "":
            self.arxiv_id = None
        super().save(*args, **kwargs)

    @property
    def pdf_link(self) -> str:
        if self.pdf_url:
            return self.pdf_url
        return f"https://arxiv.org/pdf/{self.arxiv_id}" if self.arxiv_id else ""

    @property
    def short_authors(self) -> str:
        """ "Ada Lovelace, Alan Turing, Grace Hopper et al.": three names at most."""
        if len(self.authors) <= MAX_AUTHORS_SHOWN:
            return ", ".join(self.authors)
        return ", ".join(self.authors[:MAX_AUTHORS_SHOWN]) + " et al."

    @property
    def url(self) -> str:
        """The paper's page on arXiv; a title search there when no source gave its id."""
        if self.abstract_url:
            return self.abstract_url
        if self.arxiv_id:
            return f"https://arxiv.org/abs/{self.arxiv_id}"
        return (
            f"https://arxiv.org/search/?{urlencode({'query': self.title, 'searchtype': 'title'})}"
        )


class TopicQuerySet(models.QuerySet):
    def curated(self):
        return self.filter(kind=Topic.Kind.CURATED)

    def interests(self):
        return self.filter(kind=Topic.Kind.INTEREST)


class Topic(models.Model):
    class Kind(models.TextChoices):
        CURATED = "curated", "Curated"
        INTEREST = "interest", "Subscriber interest"

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    key = models.CharField(
        max_length=100,
        unique=True,
        editable=False,
        help_text="Normalised name: everyone who types the same interest shares one topic.",
    )
    kind = models.CharField(max_length=16, choices=Kind, default=Kind.CURATED)
    description = models.TextField(blank=True)
    terms = models.TextField(
        blank=True,
        help_text="Words or phrases that define the topic, one per line. "
        "A paper matches when its title or abstract contains them.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TopicQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(key=""), name="topic_key_not_empty"),
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.name = clean_line(self.name)
        self.key = normalise_key(self.name, max_length=100)
        super().save(*args, **kwargs)

    @property
    def term_list(self) -> list[str]:
        return [term for line in self.terms.splitlines() if (term := clean_line(line))]

    @classmethod
    def for_interest(cls, text: str) -> "Topic":
        """The topic for a subscriber's free-text interest, shared by everyone who types it.

        An interest that matches a curated topic's name joins that topic.
        """
        name = clean_line(text)[:100]
        key = normalise_key(name, max_length=100)
        if not key:
            raise ValueError("an interest needs at least one letter or digit")
        try:
            return cls.objects.get(key=key)
        except cls.DoesNotExist:
            pass
        slug = slugify(name)[:80] or "interest"
        if cls.objects.filter(slug=slug).exists():
            slug = f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
        try:
            with transaction.atomic():
                return cls.objects.create(name=name, slug=slug, kind=cls.Kind.INTEREST, terms=name)
        except IntegrityError:
            # Another request created it between our read and our insert.
            return cls.objects.get(key=key)


class PaperTopicQuerySet(models.QuerySet):
    def matching(self):
        """Scores that put a paper in a topic: over the threshold or pinned, never
        excluded, never a hidden paper."""
        from django.conf import settings

        return self.filter(
            Q(score__gte=settings.PAPERBOY_MATCH_THRESHOLD)
            | Q(curation=PaperTopic.Curation.PINNED),
            paper__hidden=False,
        ).exclude(curation=PaperTopic.Curation.EXCLUDED)


class PaperTopic(models.Model):
    """A paper scored against a topic, once per paper and topic (never per subscriber)."""

    class Curation(models.TextChoices):
        NONE = "", "As scored"
        PINNED = "pinned", "Pinned to the topic"
        EXCLUDED = "excluded", "Excluded from the topic"

    # Indexed by paper_topic_unique and paper_topic_topic_idx, which start with them.
    paper = models.ForeignKey(
        Paper, on_delete=models.CASCADE, related_name="topic_scores", db_index=False
    )
    topic = models.ForeignKey(
        Topic, on_delete=models.CASCADE, related_name="paper_scores", db_index=False
    )
    score = models.FloatField(default=0, help_text="Lexical and semantic evidence combined.")
    matched_terms = models.JSONField(default=list, blank=True)
    lexical = models.FloatField(default=0, help_text="The score of the topic's terms as written.")
    similarity = models.FloatField(
        default=0, help_text="Cosine similarity to the closest of the topic's phrases."
    )
    closest = models.CharField(
        max_length=200, blank=True, help_text="The topic's phrase closest in meaning."
    )
    curation = models.CharField(
        max_length=16,
        choices=Curation,
        blank=True,
        default=Curation.NONE,
        help_text="A curator's decision, which scoring never overrides.",
    )
    scored_at = models.DateTimeField(auto_now=True)

    objects = PaperTopicQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["paper", "topic"], name="paper_topic_unique"),
        ]
        indexes = [
            # Composing a digest: the papers matched by a subscriber's topics.
            models.Index(fields=["topic", "paper"], name="paper_topic_topic_idx"),
        ]

    def __str__(self):
        return f"{self.paper} · {self.topic} ({self.score:.2f})"


class ImportRun(models.Model):
    """One import of one source, kept so curators can see what came in."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    source = models.CharField(max_length=1000)
    format = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=Status)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-finished_at", "-pk"]

    def __str__(self):
        return f"{self.source} ({self.status})"


class PaperEmbedding(models.Model):
    """A paper's title and abstract as a unit vector (papers.embeddings)."""

    paper = models.OneToOneField(
        Paper, on_delete=models.CASCADE, primary_key=True, related_name="embedding"
    )
    model = models.CharField(max_length=100, help_text="The model that made the vector.")
    vector = models.BinaryField(help_text="float32, little-endian, unit length.")
    chunks = models.BinaryField(
        default=b"", help_text="The title's and each sentence's vector, one after another."
    )
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["model"], name="paperembedding_model_idx")]

    def __str__(self):
        return f"{self.paper_id} ({self.model})"


class TopicEmbedding(models.Model):
    """A topic's phrases as unit vectors, and how similar papers usually are to them.

    ``center`` and ``spread`` describe the similarity of the papers stored when the
    topic was embedded (their median, and the median absolute deviation scaled to a
    standard deviation): a paper matches by meaning when it stands out from them, so
    a short acronym, whose similarities are all low, is judged as fairly as a long
    description, whose similarities are all high.
    """

    topic = models.OneToOneField(
        Topic, on_delete=models.CASCADE, primary_key=True, related_name="embedding"
    )
    model = models.CharField(max_length=100)
    phrases = models.JSONField(default=list, help_text="What each vector embeds, in order.")
    labels = models.JSONField(default=list, help_text="Each phrase as the reader wrote it.")
    vectors = models.BinaryField()
    center = models.FloatField()
    spread = models.FloatField()
    background = models.PositiveIntegerField(
        default=0, help_text="How many papers center and spread were measured on."
    )
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.topic} ({self.model})"
