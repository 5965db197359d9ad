"""A paper picked for a reader's digest, and why, in words the reader can check."""

from dataclasses import dataclass, field

from papers.models import Paper, Topic

# DigestItem.reason's max_length.
REASON_LENGTH = 500


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
        """Why it was picked, as a sentence that follows "Why:", honest about how:
        "Continual learning: mentions replay buffer, experience replay.", "Close in
        meaning to 'robots learning from demonstrations'.", "Robotics: picked by a
        curator.", "Like 'Data Quality in Imitation Learning', which you liked."

        Topic names stay as written (a capital is never forced on "iPhone"); our own
        words start upper-case only when they start the sentence; "; " separates
        topics; a full stop ends it.
        """
        parts: list[tuple[str, str]] = []  # (the topic named, or "", and how)
        for index, topic in enumerate(self.topics[:3]):
            terms, closest = self.evidence[index] if index < len(self.evidence) else ([], "")
            if terms:
                how = "mentions " + ", ".join(terms[:3])
            elif closest:
                how = f"close in meaning to '{closest}'"
            else:
                # Neither its words nor its meaning put it there: only a pin does.
                how = "picked by a curator"
            # A reader's own interest is its phrase: naming it again says nothing.
            phrase = topic.kind == Topic.Kind.INTEREST and (
                terms == [topic.name] or (not terms and closest == topic.name)
            )
            parts.append(("" if phrase else topic.name, how))
        if self.liked:
            parts.append(("", f"like '{self.liked}', which you liked"))
        if not parts:
            return ""
        sentence = "; ".join(f"{name}: {how}" if name else how for name, how in parts)
        starts_with_a_topic = bool(parts[0][0])
        if not starts_with_a_topic:
            sentence = sentence[0].upper() + sentence[1:]
        # The ledger keeps REASON_LENGTH characters.
        if len(sentence) < REASON_LENGTH:
            return sentence + "."
        return sentence[: REASON_LENGTH - 1] + "…"
