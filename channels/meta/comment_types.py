"""What Facebook's ``feed`` and Instagram's ``comments`` changes carry, as far as the
channels read them (docs/channels/facebook.md, "Page comments"; docs/channels/instagram.md,
"Comments"). Unknown fields are ignored."""

from __future__ import annotations

from pydantic import Field

from channels.meta.envelope import MetaId, MetaModel


class Author(MetaModel):
    id: MetaId
    name: str | None = None
    username: str | None = None


class FeedPost(MetaModel):
    id: MetaId | None = None
    permalink_url: str | None = None
    status_type: str | None = None


class FeedValue(MetaModel):
    """A ``feed`` change: ``item`` x ``verb`` says what happened."""

    item: str
    verb: str
    from_: Author | None = Field(default=None, alias="from")
    post_id: MetaId | None = None
    comment_id: MetaId | None = None
    parent_id: MetaId | None = None
    message: str | None = None
    created_time: int | None = None
    photo: str | None = None
    video: str | None = None
    post: FeedPost | None = None
    reaction_type: str | None = None
    """``reaction`` items: like, love, care, haha, wow, sad, angry."""


class IgMedia(MetaModel):
    id: MetaId
    media_product_type: str | None = None
    ad_id: MetaId | None = None
    ad_title: str | None = None


class IgCommentValue(MetaModel):
    """A ``comments`` (or ``live_comments``) change: one comment on a media."""

    id: MetaId
    text: str | None = None
    from_: Author | None = Field(default=None, alias="from")
    media: IgMedia | None = None
    parent_id: MetaId | None = None
