"""The model thread's side of continuous batching for text (genkit.serving.continuous): requests
join the running batch at the next token and leave when their completions end.

Every request is one group of genkit's generation loop (genkit.models.decoding): its n rows
start from its prompt, are sampled with its own generator seeded by its `seed`, exactly as
`genkit sample prompt=... n=... seed=...` samples them, so a request's text does not depend on
what it was batched with (up to the last bits of the batched matmuls). Rows of different
prompt lengths share one cache (padded, masked); a completion longer than the network's context
slides its window as `genkit sample` does.
"""

import torch

from genkit.data.base import GenkitDataModule
from genkit.models.base import GenerativeModel
from genkit.models.decoding import Decoding, Group, Sampling
from genkit.serving.batcher import Job
from genkit.serving.text import Choice, TextRequest, token_scores


class Running:
    """A request in the batch: its job, its rows' group in the loop, its choices so far."""

    def __init__(self, job: Job, group: Group, choices: list[Choice], decode):
        self.job, self.group, self.choices, self.decode = job, group, choices, decode

    @property
    def request(self) -> TextRequest:
        return self.job.payload


class TextRunner:
    def __init__(self, model: GenerativeModel, datamodule: GenkitDataModule, on_answered=lambda request, choices: None):
        """on_answered(request, choices): told of every answered request (the metrics' token counts)."""
        self.model, self.datamodule, self.on_answered = model, datamodule, on_answered
        self.decoding = Decoding(model.net)
        self.running: list[Running] = []  # in the loop's group order
        # a run with a label head (model.head=labels) answers with a label's text, not generated text
        self.labels = getattr(model, "label_head", None) is not None

    @property
    def rows(self) -> int:
        return self.decoding.rows

    @property
    def can_join(self) -> bool:
        return self.decoding.can_join

    @torch.inference_mode()
    def step(self, joining: list[Job]) -> int:
        """One token for every running row, after the joining requests' prompts are read; returns
        how many rows drew one."""
        try:
            if self.decoding.rows:
                self.decoding.advance()  # what every row drew last step
        except Exception as err:  # the network failed: every running request fails, the server goes on
            self._fail_all(err)
        for job in joining:
            try:
                self._admit(job)
            except Exception as err:
                job.fail(err)
        rows = self.decoding.rows
        if not rows:
            return 0
        try:
            self._draw()
        except Exception as err:
            self._fail_all(err)
        return rows

    def _fail_all(self, err: Exception) -> None:
        for running in self.running:
            running.job.fail(err)
        self.running, self.decoding = [], Decoding(self.model.net)

    def _admit(self, job: Job) -> None:
        r: TextRequest = job.payload
        r.generator = torch.Generator(device=self.model.device).manual_seed(r.seed)
        if self.labels:
            self._answer_with_labels(job)
            return
        prompts = torch.tensor([r.prompt_ids] * r.n, dtype=torch.long, device=self.model.device)
        scored = r.echo and r.logprobs is not None
        group = self.decoding.add(prompts, Sampling(r.temperature, r.top_k, r.top_p, r.generator), scored)
        if scored:  # the prompt's own tokens, from the same read
            r.prompt_scores = token_scores(group.prompt_logits[0, :-1], prompts[0, 1:], r.logprobs)
            group.prompt_logits = None
        first = r.prompt_ids[:1]  # decode drops a row's first token (the start token)

        def decode(ids: list[int]) -> str:
            return self.datamodule.samples_as_text(torch.tensor([first + ids]))[0]

        running = Running(job, group, [Choice() for _ in range(r.n)], decode)
        if r.max_tokens == 0:  # echo only: nothing to generate
            for choice in running.choices:
                choice.finish_reason = "length"
            self.decoding.remove(group)
            self._answer(running)
            return
        self.running.append(running)

    def _draw(self) -> None:
        logits = self.decoding.logits  # (rows, vocab): what the tokens are drawn from
        drawn = self.decoding.sample()
        tokens, at, done = self.decoding.last[:, 0], 0, []
        for running, new in zip(self.running, drawn, strict=True):
            r, rows = running.request, running.group.rows
            last = running.group.length - len(r.prompt_ids) == r.max_tokens
            # the model's own distribution (before temperature and truncation), as OpenAI reports it
            scored = None
            if r.logprobs is not None:
                scored = token_scores(logits[at : at + rows], tokens[at : at + rows], r.logprobs)
            at += rows
            for i, (choice, token) in enumerate(zip(running.choices, new, strict=True)):
                if choice.finish_reason is None:
                    kept = len(choice.ids)
                    said = choice.grow(token, running.decode, r, last)
                    if scored is not None and len(choice.ids) > kept:
                        choice.scores.append(scored[i])
                    if said is not None and r.stream:
                        running.job.emit((i, *said))
            if all(c.finish_reason for c in running.choices):
                done.append(running)
        for running in done:
            self.decoding.remove(running.group)
            self.running.remove(running)
            self._answer(running)

    def _answer(self, running: Running) -> None:
        running.job.finish(running.choices)
        self.on_answered(running.request, running.choices)

    def _answer_with_labels(self, job: Job) -> None:
        """A request's n answers: the label the head picks (temperature 0) or draws, as its text."""
        r: TextRequest = job.payload
        rows = self.model.sample(r.n, generator=r.generator, prompt_ids=r.prompt_ids, temperature=r.temperature)
        choices = []
        for row in rows[:, len(r.prompt_ids) :].tolist():
            row = row[: row.index(row[-1]) + 1]  # up to its closing end-of-text (the rows are padded with it)
            choice = Choice(ids=row, text=self.datamodule.decode_completion(row), finish_reason="stop")
            choices.append(choice)
            if r.stream:
                job.emit((len(choices) - 1, choice.text, "stop"))
        job.finish(choices)
        self.on_answered(r, choices)


def run_to_end(model: GenerativeModel, datamodule: GenkitDataModule, jobs: list[Job]) -> None:
    """Every job answered, all joining at once (tests, and a caller without a server)."""
    runner = TextRunner(model, datamodule)
    runner.step(jobs)
    while runner.rows:
        runner.step([])
