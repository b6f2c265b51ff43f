"""Teacher backends behind one interface (:class:`~hfsynth.teachers.base.Teacher`)."""

from __future__ import annotations

from hfsynth.recipe.schema import TeacherConfig
from hfsynth.teachers.base import Teacher

__all__ = ["Teacher", "load_teacher"]


def load_teacher(config: TeacherConfig) -> Teacher:
    """The backend a recipe's ``teacher:`` section names. Heavy imports happen only for the backend used."""
    if config.backend == "remote":
        from hfsynth.teachers.remote import RemoteTeacher

        if isinstance(config.base_url, list):
            if len(config.base_url) > 1:
                from hfsynth.teachers.replicas import ReplicaTeacher

                return ReplicaTeacher(config)
            config = config.model_copy(update={"base_url": config.base_url[0]})
        return RemoteTeacher(config)
    from hfsynth.teachers.local import LocalTeacher

    return LocalTeacher(config)
