"""A paper picked for a reader's digest, and why, in words the reader can check."""

from dataclasses import dataclass, field

from papers.models import Paper, Topic


@dataclass
class Pick:
    paper: Paper
    relevance: float
    topics: list[Topic] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    score: float = 0.0
    # Per topic, in the order of ``topics``: its terms found as written, and its
    # phrase closest in meaning when meaning counted.
    evidence: list[tuple[list[str], str]] = field(default_factory=list)
    liked_id: int | None = None  # a paper the reader liked that this one resembles
    liked: str = ""  # its title

    @property
    def reason(self) -> str:
        """Why it was picked, honest about how: "Continual learning: matched 'replay
        buffer'", "close in meaning to 'robots learning from demonstrations'",
        "like 'Data Quality in Imitation Learning', which you liked"."""
        parts = []
        for index, topic in enumerate(self.topics[:3]):
            terms, closest = self.evidence[index] if index < len(self.evidence) else ([], "")
            if terms:
                how = "matched " + ", ".join(f"'{term}'" for term in terms[:3])
            elif closest:
                how = f"close in meaning to '{closest}'"
            else:
                how = ""  # pinned by a curator
            # A reader's own interest is its phrase: naming it again says nothing.
            phrase = topic.kind == Topic.Kind.INTEREST and (
                terms == [topic.name] or (not terms and closest == topic.name)
            )
            if phrase:
                parts.append(how)
            else:
                parts.append(f"{topic.name}: {how}" if how else topic.name)
        if self.liked:
            parts.append(f"like '{self.liked}', which you liked")
        return "; ".join(parts)[:500]
