"""Files → vocabulary → datasets: everything that turns text into training tensors."""

from kgpt.data.corpus import Question, corpus_documents, read_corpus, read_questions
from kgpt.data.corruption import CharCorruptionDataset, CorruptionBatcher
from kgpt.data.questions import NameDataset, QuestionBatcher, encode_questions

__all__ = [
    "CharCorruptionDataset",
    "CorruptionBatcher",
    "NameDataset",
    "Question",
    "QuestionBatcher",
    "corpus_documents",
    "encode_questions",
    "read_corpus",
    "read_questions",
]
