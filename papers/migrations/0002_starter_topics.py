from django.db import migrations

from core.text import normalise_key

# (name, slug, description, terms). Terms are phrases a reader of that field would
# search for; the matcher stems them, so singular forms cover plurals.
STARTER_TOPICS = [
    (
        "Reinforcement learning",
        "reinforcement-learning",
        "Agents that learn from reward: online and offline RL, policy optimisation, model-based RL.",
        [
            "reinforcement learning",
            "offline reinforcement learning",
            "policy optimization",
            "policy gradient",
            "Q-learning",
            "reward function",
            "Markov decision process",
            "deep RL",
            "RL",
        ],
    ),
    (
        "Continual learning",
        "continual-learning",
        "Learning from a stream of tasks without forgetting the earlier ones.",
        [
            "continual learning",
            "continual",
            "lifelong learning",
            "catastrophic forgetting",
            "incremental learning",
            "experience replay",
            "replay buffer",
            "knowledge retention",
        ],
    ),
    (
        "In-context learning",
        "in-context-learning",
        "How models learn from examples in their prompt, and the mechanisms behind it.",
        [
            "in-context learning",
            "in-context examples",
            "few-shot prompting",
            "induction head",
            "in-context learner",
        ],
    ),
    (
        "Diffusion models",
        "diffusion-models",
        "Denoising diffusion and score-based generative models for images, video and beyond.",
        [
            "diffusion model",
            "denoising diffusion",
            "score-based",
            "latent diffusion",
            "text-to-image",
            "video diffusion",
        ],
    ),
    (
        "LLM agents",
        "llm-agents",
        "Language-model agents that plan, use tools and act in environments.",
        [
            "LLM agent",
            "language agent",
            "language model agent",
            "autonomous agent",
            "tool use",
            "web navigation",
            "agentic",
            "multi-agent",
        ],
    ),
    (
        "Large language models",
        "large-language-models",
        "Training, scaling and behaviour of large language models.",
        [
            "large language model",
            "LLM",
            "language model pretraining",
            "instruction tuning",
            "scaling law",
        ],
    ),
    (
        "Retrieval-augmented generation",
        "retrieval-augmented-generation",
        "Generation grounded in retrieved documents; dense retrieval and search.",
        [
            "retrieval-augmented generation",
            "retrieval augmented",
            "RAG",
            "dense retrieval",
            "retriever",
        ],
    ),
    (
        "Reasoning",
        "reasoning",
        "Chain-of-thought, mathematical and logical reasoning in models.",
        [
            "chain-of-thought",
            "mathematical reasoning",
            "reasoning",
            "logical reasoning",
            "step-by-step",
        ],
    ),
    (
        "Vision-language models",
        "vision-language-models",
        "Models that read images and text together: multimodal LLMs, CLIP and captioning.",
        [
            "vision-language model",
            "multimodal LLM",
            "multimodal large language model",
            "multi-modal LLM",
            "multi-modal large language model",
            "VLM",
            "CLIP",
            "image captioning",
            "visual question answering",
        ],
    ),
    (
        "Video generation",
        "video-generation",
        "Generating and editing video from text, images or other videos.",
        [
            "video generation",
            "text-to-video",
            "image-to-video",
            "video synthesis",
            "video diffusion",
        ],
    ),
    (
        "Computer vision",
        "computer-vision",
        "Recognition, detection, segmentation and 3D understanding of images.",
        [
            "object detection",
            "image classification",
            "semantic segmentation",
            "image segmentation",
            "3D reconstruction",
            "visual recognition",
        ],
    ),
    (
        "Alignment and RLHF",
        "alignment-rlhf",
        "Aligning models with human preferences: RLHF, DPO, reward models.",
        [
            "RLHF",
            "reinforcement learning from human feedback",
            "preference optimization",
            "direct preference optimization",
            "reward model",
            "aligning language models",
            "alignment of large language models",
            "human preferences",
            "learning from human feedback",
        ],
    ),
    (
        "Efficient models",
        "efficient-models",
        "Making models smaller and faster: quantisation, pruning, distillation, sparsity.",
        [
            "quantization",
            "network pruning",
            "pruning",
            "knowledge distillation",
            "sparsity",
            "efficient inference",
            "model compression",
        ],
    ),
    (
        "Parameter-efficient fine-tuning",
        "parameter-efficient-fine-tuning",
        "Adapting large models cheaply: LoRA, adapters, prompt tuning.",
        [
            "LoRA",
            "low-rank adaptation",
            "parameter-efficient fine-tuning",
            "parameter-efficient",
            "PEFT",
            "adapter",
            "prompt tuning",
        ],
    ),
    (
        "Interpretability",
        "interpretability",
        "Understanding what models compute: mechanistic interpretability, probing, concepts.",
        [
            "interpretability",
            "mechanistic interpretability",
            "explainability",
            "probing",
            "sparse autoencoder",
            "representation shift",
            "concept-based",
        ],
    ),
    (
        "Robotics",
        "robotics",
        "Robot learning, manipulation and embodied agents.",
        ["robot", "robotic manipulation", "robot learning", "embodied agent", "sim-to-real"],
    ),
    (
        "Meta-learning",
        "meta-learning",
        "Learning to learn: meta-training, few-shot adaptation, learned optimisers.",
        [
            "meta-learning",
            "learning to learn",
            "meta-training",
            "few-shot learning",
            "learned optimizer",
        ],
    ),
    (
        "Graph neural networks",
        "graph-neural-networks",
        "Learning on graphs: message passing, GNNs and graph transformers.",
        [
            "graph neural network",
            "GNN",
            "message passing",
            "graph transformer",
            "node classification",
        ],
    ),
    (
        "Recommender systems",
        "recommender-systems",
        "Recommendation, ranking and user modelling.",
        [
            "recommender system",
            "recommendation",
            "sequential recommendation",
            "collaborative filtering",
            "user interest",
        ],
    ),
    (
        "Speech and audio",
        "speech-and-audio",
        "Speech recognition and synthesis, audio and music models.",
        [
            "speech recognition",
            "text-to-speech",
            "speech synthesis",
            "audio generation",
            "spoken language",
            "music generation",
        ],
    ),
    (
        "Code generation",
        "code-generation",
        "Program synthesis and language models that write code.",
        [
            "code generation",
            "program synthesis",
            "code LLM",
            "code completion",
            "synthesizing programs",
        ],
    ),
    (
        "Model architectures",
        "model-architectures",
        "Transformers and their successors: attention, state-space models, mixtures of experts.",
        [
            "transformer architecture",
            "attention mechanism",
            "self-attention",
            "state space model",
            "mixture of experts",
            "linear attention",
        ],
    ),
]


def add_topics(apps, schema_editor):
    Topic = apps.get_model("papers", "Topic")
    for name, slug, description, terms in STARTER_TOPICS:
        Topic.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                # Historical models skip Topic.save(), so set the key here.
                "key": normalise_key(name, max_length=100),
                "kind": "curated",
                "description": description,
                "terms": "\n".join(terms),
            },
        )


def remove_topics(apps, schema_editor):
    Topic = apps.get_model("papers", "Topic")
    Topic.objects.filter(slug__in=[slug for _, slug, _, _ in STARTER_TOPICS]).delete()


class Migration(migrations.Migration):
    dependencies = [("papers", "0001_initial")]

    operations = [migrations.RunPython(add_topics, remove_topics)]
