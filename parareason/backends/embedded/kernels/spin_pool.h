/* The kernels' worker threads: items of a parallel loop handed out in chunks, workers
 * that spin a while before they sleep, and a caller that never waits for a late worker.
 *
 * Why not OpenMP: a batch-1 decode step makes ~100 parallel calls, each ~50-150 us,
 * with the caller's Python between them. libgomp's sleeping workers (OMP_WAIT_POLICY=
 * PASSIVE, which torch's own loops keep here) take ~100 us to wake each call: 35 vs 24 ms a
 * step (qwen2.5-0.5b-coder q8, Intel Xeon, 2 cores). Spinning ones (ACTIVE, or
 * GOMP_SPINCOUNT) wake at once but stall every barrier when another process holds a core:
 * a spinner waits for its descheduled sibling, 3x slower than sleeping under one busy
 * process. Here the caller claims chunks too, so work a late worker never started is done
 * by whoever is running; the caller waits only for chunks a worker has begun. Spinning
 * workers `sched_yield()` between polls, so under load they give their core away.
 *
 * Claiming: one 64-bit ticket, job generation << 42 | items << 21 | next item. A worker
 * claims a chunk with a CAS on the whole ticket, which fails once another job is
 * published, so a worker late for one job never claims items of the next; it reads the
 * job's fn and arg only after a claim succeeds, while the job cannot end (it holds
 * unfinished items), and the caller writes them before it publishes the ticket.
 *
 * Idle prefetch: a job may name memory the caller reads next (the next layer's weights);
 * a worker done with its share prefetches it while the caller runs the Python and torch
 * ops between two calls, when the memory bus would be idle, and stops as soon as another
 * job is published. A prefetch never faults, so a stale address is harmless.
 */
#ifndef PARAREASON_SPIN_POOL_H
#define PARAREASON_SPIN_POOL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define POOL_RELAX() _mm_pause()
#else
#define POOL_RELAX() ((void)0)
#endif

#define POOL_MAX_THREADS 256
#define POOL_BITS 21  /* items per job < 2^21; more run on the caller alone */
#define POOL_MASK ((1ULL << POOL_BITS) - 1)

typedef void (*pool_fn)(void* arg, int begin, int end);

static struct {
  int workers;                 /* started so far */
  _Atomic uint64_t ticket;     /* generation << 42 | items << 21 | next unclaimed item */
  _Atomic int done;            /* items finished in the current job */
  _Atomic int sleepers;
  _Atomic int chunk;
  _Atomic long spin_ns;        /* how long an idle worker polls before it sleeps */
  _Atomic int in_use;          /* a caller is running a job */
  const char* _Atomic prefetch; /* memory to pull into cache once the job's items are claimed */
  _Atomic size_t prefetch_bytes;
  pool_fn fn;
  void* arg;
  pthread_mutex_t mu;
  pthread_cond_t wake;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .spin_ns = 2000000};

static inline int64_t pool_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline uint64_t pool_job(uint64_t ticket) { return ticket & ~POOL_MASK; }

/* Claim and run chunks of `job` (a ticket without its next-item bits) until none is left
 * or another job is published. */
static void pool_work(uint64_t job) {
  uint64_t items = (job >> POOL_BITS) & POOL_MASK;
  uint64_t t = atomic_load(&pool.ticket);
  for (;;) {
    if (pool_job(t) != job) return;
    uint64_t next = t & POOL_MASK;
    if (next >= items) return;
    uint64_t end = next + (uint64_t)atomic_load_explicit(&pool.chunk, memory_order_relaxed);
    if (end > items) end = items;
    if (!atomic_compare_exchange_weak(&pool.ticket, &t, job | end)) continue;
    pool.fn(pool.arg, (int)next, (int)end);
    atomic_fetch_add(&pool.done, (int)(end - next));
    t = atomic_load(&pool.ticket);
  }
}

static void* pool_worker(void* unused) {
  (void)unused;
  uint64_t seen = pool_job(atomic_load(&pool.ticket));
  for (;;) {
    int64_t since = pool_now_ns();
    unsigned polls = 0;
    while (pool_job(atomic_load(&pool.ticket)) == seen) {
      POOL_RELAX();
      if (++polls % 256) continue;
      if (pool_now_ns() - since < atomic_load(&pool.spin_ns)) {
        sched_yield();  /* a no-op on an idle core; hands a loaded one to whoever waits for it */
        continue;
      }
      pthread_mutex_lock(&pool.mu);
      atomic_fetch_add(&pool.sleepers, 1);
      while (pool_job(atomic_load(&pool.ticket)) == seen) pthread_cond_wait(&pool.wake, &pool.mu);
      atomic_fetch_sub(&pool.sleepers, 1);
      pthread_mutex_unlock(&pool.mu);
    }
    seen = pool_job(atomic_load(&pool.ticket));
    pool_work(seen);
    const char* ahead = atomic_load(&pool.prefetch);
    size_t bytes = atomic_load(&pool.prefetch_bytes);
    int64_t until = pool_now_ns() + atomic_load(&pool.spin_ns);  /* it counts as spinning */
    for (size_t off = 0; ahead && off < bytes; off += 64) {
      if (off % 4096 == 0 && (pool_job(atomic_load(&pool.ticket)) != seen || pool_now_ns() > until)) break;
      __builtin_prefetch(ahead + off, 0, 2);
    }
  }
  return NULL;
}

static void pool_after_fork(void) {  /* the child has no workers; start anew on first use */
  pool.workers = 0;
  pthread_mutex_init(&pool.mu, NULL);
  pthread_cond_init(&pool.wake, NULL);
  atomic_store(&pool.sleepers, 0);
  atomic_store(&pool.in_use, 0);
}

static void pool_start(int workers) {
  if (workers > POOL_MAX_THREADS - 1) workers = POOL_MAX_THREADS - 1;
  if (pool.workers == 0 && workers > 0) pthread_atfork(NULL, NULL, pool_after_fork);
  while (pool.workers < workers) {
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int failed = pthread_create(&tid, &attr, pool_worker, NULL);
    pthread_attr_destroy(&attr);
    if (failed) break;  /* fewer threads: the caller does the rest */
    pool.workers++;
  }
}

/* fn(arg, begin, end) over [0, items) in chunks, on up to `threads` threads (the caller
 * included); then idle workers prefetch [ahead, ahead + ahead_bytes) (NULL: nothing). A
 * second caller while one runs (two engines on two Python threads) runs its job alone
 * rather than share the pool's one job slot. */
static void pool_run(pool_fn fn, void* arg, int items, int threads, const void* ahead, size_t ahead_bytes) {
  if (items <= 0) return;
  if (threads <= 1 || items == 1 || (uint64_t)items > POOL_MASK || atomic_exchange(&pool.in_use, 1)) {
    fn(arg, 0, items);
    return;
  }
  pool_start(threads - 1);
  int parts = 4 * threads;  /* a few chunks each: a slow thread leaves its share to the others */
  pool.fn = fn;
  pool.arg = arg;
  atomic_store(&pool.prefetch, (const char*)ahead);
  atomic_store(&pool.prefetch_bytes, ahead_bytes);
  atomic_store(&pool.chunk, (items + parts - 1) / parts);
  atomic_store(&pool.done, 0);
  uint64_t gen = (atomic_load(&pool.ticket) >> (2 * POOL_BITS)) + 1;
  uint64_t job = (gen << (2 * POOL_BITS)) | ((uint64_t)items << POOL_BITS);
  atomic_store(&pool.ticket, job);
  if (atomic_load(&pool.sleepers) > 0) {
    pthread_mutex_lock(&pool.mu);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
  }
  pool_work(job);
  for (unsigned polls = 1; atomic_load(&pool.done) < items; polls++) {  /* chunks others began */
    POOL_RELAX();
    if (polls % 256 == 0) sched_yield();
  }
  atomic_store(&pool.in_use, 0);
}

#endif
