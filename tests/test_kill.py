"""``kill -9`` at every step boundary of ``index``, then a rerun: nothing lost, saved chunks not
embedded again, heads kept. And queries running while the index is rewritten.

The killed run is a forked child that dies with ``os._exit`` (no clean-up handlers run, as
with SIGKILL) at the N-th call of a step: each saved chunk, the generation writer's finish,
the publish rename, the chunk clean-up. Small numpy encoders stand in for the models.
"""

from __future__ import annotations

import os
import threading

import pytest
from fakes import TinyImageEncoder, TinyTextEncoder, tiny_searcher, write_image, write_model
from test_index_life import assert_same, snapshot

from imgsearch import store
from imgsearch.embed.job import EmbedOptions
from imgsearch.indexing.build import index_folder
from imgsearch.search.query import build_query
from imgsearch.store import Store

KILL_POINTS = [
    ("imgsearch.store.save_chunk", 1),
    ("imgsearch.store.save_chunk", 2),
    ("imgsearch.store.GenerationWriter.finish", 1),
    ("imgsearch.store.Store.publish", 1),
    ("imgsearch.store.clear_chunks", 1),
]


class CountingImageEncoder(TinyImageEncoder):
    def __init__(self) -> None:
        self.images = 0

    def encode(self, pixels):
        self.images += len(pixels)
        return super().encode(pixels)


def run_index(folder, model=None, image=None, **kw):
    return index_folder(
        folder,
        EmbedOptions(chunk=4, **kw),
        model=model,
        image=image or TinyImageEncoder(),
        text=TinyTextEncoder(),
    )


def killed_at(target: str, nth: int, run) -> None:
    """Run ``run()`` in a forked child that dies at the ``nth`` call of ``target``."""
    pid = os.fork()
    if pid == 0:
        try:
            module, _, name = target.rpartition(".")
            owner = store if module == "imgsearch.store" else getattr(store, module.rsplit(".", 1)[1])
            real = getattr(owner, name)
            calls = [0]

            def dying(*a, **kw):
                calls[0] += 1
                if calls[0] == nth:
                    os._exit(137)
                return real(*a, **kw)

            setattr(owner, name, dying)
            run()
        finally:
            os._exit(0)  # the step was never reached: the run finished
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 137, f"{target} #{nth} was never reached"


@pytest.mark.parametrize(("target", "nth"), KILL_POINTS)
def test_kill_at_each_step_then_rerun(tmp_path, target, nth):
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(6):
        write_image(folder / f"a{seed}.png", seed)
    model = write_model(tmp_path / "model")
    run_index(folder, model=model)  # a live index with trained heads
    for seed in range(6, 16):
        write_image(folder / f"b{seed}.png", seed)
    (folder / "a0.png").unlink()
    before = Store(folder / ".imgsearch").current_dir()

    killed_at(target, nth, lambda: run_index(folder))

    st = Store(folder / ".imgsearch")
    if target != "imgsearch.store.clear_chunks":  # killed before the rename: the old index is live
        assert st.current_dir() == before and st.require().count == 6
    saved = len(store.load_chunks(st, _chunk_key())[0]) if st.partial_dir.exists() else 0
    counting = CountingImageEncoder()
    run_index(folder, image=counting)
    assert counting.images == 10 - saved  # chunks saved before the kill are not embedded again
    assert sorted(snapshot(folder / ".imgsearch")["heads"]) == ["aligned", "metric"]
    ref = tmp_path / "ref"
    index_folder(
        folder,
        EmbedOptions(rebuild=True),
        out=ref,
        model=model,
        image=TinyImageEncoder(),
        text=TinyTextEncoder(),
    )
    assert_same(snapshot(folder / ".imgsearch"), snapshot(ref))
    assert not st.partial_dir.exists()
    assert len(list(st.root.glob("gen-*"))) <= 2


def _chunk_key() -> dict:
    from imgsearch.embed.job import Encoders

    return Encoders(EmbedOptions(), image=TinyImageEncoder(), text=TinyTextEncoder()).chunk_key()


def test_queries_during_reindex_see_one_generation(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(8):
        write_image(folder / f"a{seed}.png", seed)
    run_index(folder)
    st = Store(folder / ".imgsearch")
    stop, failures, answered = threading.Event(), [], [0]

    def reader():
        while not stop.is_set():
            try:
                gen = st.require()
                paths = {i.path for i in gen.items}
                query = build_query(texts=["red bag"], k=20)
                hits = tiny_searcher(gen, check_files=False).search(query)
                if not hits or not {h.item.path for h in hits} <= paths:
                    failures.append(gen.dir)
            except Exception as exc:  # a reader must never see a half-written or vanished generation
                failures.append(exc)
            answered[0] += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for step in range(12):
            write_image(folder / f"b{step}.png", 100 + step)
            if step % 3 == 2:
                (folder / f"a{step // 3}.png").unlink()
            run_index(folder)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [] and answered[0] > 0, failures[:3]
