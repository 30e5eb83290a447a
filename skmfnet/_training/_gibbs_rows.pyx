# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The sampler's compiled loops: each side's rows drawn from their Gaussians, and an implicit term's rows in turn.

:mod:`skmfnet._training._gibbs` explains the arithmetic.  Every row of a
side is a small Gaussian: its precision sums ``w x x^T`` over the row's
ratings (plus the prior's), and a draw is a ``K x K`` Cholesky
factorization and two triangular solves.  In numpy that was a gathered
matrix product per row plus batched ``solve`` calls, most of a sweep; here
it is one C loop per side (:func:`draw_gaussian_rows`, and
:func:`row_grams` for the sums the implicit terms start from).  The rows
of an implicit term share ratings, so they cannot be drawn at once: each is
drawn given the others and moves the sums ``g`` of the rows after it
(:func:`draw_implicit_rows`).  Written with Cython because the package
already builds its kernel that way (``setup.py``).
"""


from libc.math cimport sqrt
from libc.stdlib cimport free, malloc


cdef int _check_rows(const long long[::1] indptr, const long long[::1] index, Py_ssize_t n_index,
                     Py_ssize_t n_x) except -1:
    """ValueError unless ``indptr`` is a CSR row pointer into ``index`` and every index points at one of ``n_x`` rows."""
    cdef Py_ssize_t r, p
    if indptr.shape[0] < 1 or indptr[0] != 0 or indptr[indptr.shape[0] - 1] > n_index:
        raise ValueError("indptr must start at 0 and end within index")
    for r in range(indptr.shape[0] - 1):
        if indptr[r + 1] < indptr[r]:
            raise ValueError("indptr must not decrease")
    for p in range(indptr[indptr.shape[0] - 1]):
        if index[p] < 0 or index[p] >= n_x:
            raise ValueError("an index is outside x")
    return 0


cdef void _lower_gram(const long long[::1] indptr, const long long[::1] index, const double[::1] weights,
                      const double[:, ::1] x, Py_ssize_t r, double *out, Py_ssize_t k,
                      const double[::1] residual, double *rhs) noexcept nogil:
    """``sum w x x^T`` over row ``r``'s ratings into the lower triangle of ``out``; with ``rhs``, ``sum w x e`` too."""
    cdef Py_ssize_t p, i, j, n
    cdef double wv, a
    cdef const double *xr
    for i in range(k):
        for j in range(i + 1):
            out[i * k + j] = 0.0
        if rhs != NULL:
            rhs[i] = 0.0
    for p in range(indptr[r], indptr[r + 1]):
        n, wv = index[p], weights[p]
        if wv == 0.0:
            continue
        xr = &x[n, 0]
        for i in range(k):
            a = wv * xr[i]
            if rhs != NULL:
                rhs[i] += a * residual[n]
            for j in range(i + 1):
                out[i * k + j] += a * xr[j]


def row_grams(const long long[::1] indptr, const long long[::1] index, const double[::1] weights,
              const double[:, ::1] x, double[:, :, ::1] out):
    """``out[r] = sum w x x^T`` over the rows ``x[index[p]]`` of row ``r``'s positions ``p`` (CSR ``indptr``)."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, k = x.shape[1], r, i, j
    if out.shape[0] != n_rows or out.shape[1] != k or out.shape[2] != k or weights.shape[0] != index.shape[0]:
        raise ValueError("out must be (rows, K, K) for x of K columns, and every index needs a weight")
    _check_rows(indptr, index, index.shape[0], x.shape[0])
    with nogil:
        for r in range(n_rows):
            _lower_gram(indptr, index, weights, x, r, &out[r, 0, 0], k, weights, NULL)
            for i in range(k):
                for j in range(i + 1, k):
                    out[r, i, j] = out[r, j, i]


def draw_gaussian_rows(const long long[::1] indptr, const long long[::1] index, const double[::1] weights,
                       const double[:, ::1] x, const double[::1] residual, double tau,
                       const double[::1] prior_mean, const double[::1] prior_precision,
                       const double[:, ::1] normals, double[:, ::1] out):
    """One draw of each row ``r`` from ``N(A^-1 b, A^-1)`` into ``out[r]``, rows independent of each other.

    ``A = tau sum w x x^T + diag(prior_precision)`` and ``b = tau sum w x e +
    prior_precision * prior_mean`` over row ``r``'s positions ``p``
    (``indptr[r] .. indptr[r + 1] - 1``): ``x = x[index[p]]``, ``e =
    residual[index[p]]``, ``w = weights[p]``.  With ``A = L L^T``, the draw is
    ``L^-T (L^-1 b + z)`` for the standard normal ``z = normals[r]``.  A row
    without ratings is drawn from the prior.
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, k = x.shape[1], r, i, j
    if normals.shape[0] != n_rows or normals.shape[1] != k or out.shape[0] != n_rows or out.shape[1] != k:
        raise ValueError("normals and out must be (rows, K) for x of K columns")
    if prior_mean.shape[0] != k or prior_precision.shape[0] != k or weights.shape[0] != index.shape[0]:
        raise ValueError("the prior needs K entries and every index a weight")
    if residual.shape[0] != x.shape[0]:
        raise ValueError("residual needs one entry per row of x")
    _check_rows(indptr, index, index.shape[0], x.shape[0])
    cdef double *precision = <double *> malloc(k * k * sizeof(double))
    cdef double *rhs = <double *> malloc(k * sizeof(double))
    if precision == NULL or rhs == NULL:
        free(precision); free(rhs)
        raise MemoryError()
    try:
        with nogil:
            for r in range(n_rows):
                _lower_gram(indptr, index, weights, x, r, precision, k, residual, rhs)
                for i in range(k):
                    precision[i * k + i] = tau * precision[i * k + i] + prior_precision[i]
                    for j in range(i):
                        precision[i * k + j] *= tau
                    rhs[i] = tau * rhs[i] + prior_precision[i] * prior_mean[i]
                _draw_one(precision, rhs, &normals[r, 0], &out[r, 0], k)
    finally:
        free(precision)
        free(rhs)


def draw_implicit_rows(const long long[::1] indptr, const int[::1] owners, const double[::1] weights,
                       const double[:, :, ::1] gram, double[:, ::1] g, double[:, ::1] y, double tau,
                       const double[::1] prior_mean, const double[::1] prior_precision,
                       const double[:, ::1] normals):
    """Draw ``y[l]`` for ``l = 1 .. len(y) - 1`` in turn; ``g`` and ``y`` are updated in place.

    ``indptr``, ``owners``, ``weights``: CSR over the rows of ``y`` of the
    owners (users of the user-side term) whose histories hold the row, and
    their ``c = |N|^-1/2``; ``gram[o]`` and ``g[o]``: the owner's sums of
    ``w x x^T`` and ``w x e``; ``normals``: one standard normal ``K``-vector
    per row.  A row no owner holds is drawn from the prior.  Row 0 is left
    as it is.
    """
    cdef Py_ssize_t n_rows = y.shape[0], k = y.shape[1]
    if gram.shape[1] != k or gram.shape[2] != k or g.shape[1] != k or gram.shape[0] != g.shape[0]:
        raise ValueError("gram must be (owners, K, K) and g (owners, K) for y of K columns")
    if indptr.shape[0] != n_rows + 1 or normals.shape[0] != n_rows or normals.shape[1] != k:
        raise ValueError("indptr needs len(y) + 1 entries and normals the shape of y")
    if prior_mean.shape[0] != k or prior_precision.shape[0] != k or owners.shape[0] != weights.shape[0]:
        raise ValueError("the prior needs K entries and every owner a weight")
    if indptr[n_rows] > owners.shape[0] or indptr[0] < 0:
        raise ValueError("indptr points outside owners")
    for l in range(n_rows):
        if indptr[l + 1] < indptr[l]:
            raise ValueError("indptr must not decrease")
    for l in range(owners.shape[0]):
        if owners[l] < 0 or owners[l] >= g.shape[0]:
            raise ValueError("an owner is outside gram and g")
    cdef double *precision = <double *> malloc(k * k * sizeof(double))
    cdef double *rhs = <double *> malloc(k * sizeof(double))
    cdef double *step = <double *> malloc(k * sizeof(double))
    if precision == NULL or rhs == NULL or step == NULL:
        free(precision); free(rhs); free(step)
        raise MemoryError()
    cdef Py_ssize_t row, p, i, j, o
    cdef double c, total
    try:
        with nogil:
            for row in range(1, n_rows):
                if indptr[row] == indptr[row + 1]:
                    for i in range(k):
                        y[row, i] = prior_mean[i] + normals[row, i] / sqrt(prior_precision[i])
                    continue
                for i in range(k):
                    rhs[i] = prior_precision[i] * prior_mean[i]
                    for j in range(k):
                        precision[i * k + j] = 0.0
                for p in range(indptr[row], indptr[row + 1]):
                    o, c = owners[p], weights[p]
                    for i in range(k):
                        total = g[o, i]
                        for j in range(k):
                            precision[i * k + j] += tau * c * c * gram[o, i, j]
                            total = total + c * gram[o, i, j] * y[row, j]
                        rhs[i] += tau * c * total
                for i in range(k):
                    precision[i * k + i] += prior_precision[i]
                for i in range(k):
                    step[i] = y[row, i]
                _draw_one(precision, rhs, &normals[row, 0], &y[row, 0], k)
                for i in range(k):
                    step[i] = y[row, i] - step[i]
                for p in range(indptr[row], indptr[row + 1]):
                    o, c = owners[p], weights[p]
                    for i in range(k):
                        total = 0.0
                        for j in range(k):
                            total = total + gram[o, i, j] * step[j]
                        g[o, i] -= c * total
    finally:
        free(precision)
        free(rhs)
        free(step)


cdef void _cholesky(double *a, Py_ssize_t k) noexcept nogil:
    """In place: the lower triangle of ``a`` (row-major, ``k x k``, positive definite) becomes ``L``."""
    cdef Py_ssize_t i, j, m
    cdef double total
    for j in range(k):
        total = a[j * k + j]
        for m in range(j):
            total -= a[j * k + m] * a[j * k + m]
        a[j * k + j] = sqrt(total)
        for i in range(j + 1, k):
            total = a[i * k + j]
            for m in range(j):
                total -= a[i * k + m] * a[j * k + m]
            a[i * k + j] = total / a[j * k + j]


cdef void _draw_one(double *precision, double *rhs, const double *normals, double *out, Py_ssize_t k) noexcept nogil:
    """``out = L^-T (L^-1 rhs + normals)`` with ``precision = L L^T`` (lower triangle read, overwritten by ``L``).

    The draw of ``N(precision^-1 rhs, precision^-1)`` for the standard normal
    ``normals``; ``rhs`` is overwritten.
    """
    cdef Py_ssize_t i, j
    cdef double total
    _cholesky(precision, k)
    for i in range(k):  # L u = rhs
        total = rhs[i]
        for j in range(i):
            total -= precision[i * k + j] * rhs[j]
        rhs[i] = total / precision[i * k + i]
    for i in range(k):  # then L^T out = u + z
        rhs[i] += normals[i]
    for i in range(k - 1, -1, -1):
        total = rhs[i]
        for j in range(i + 1, k):
            total -= precision[j * k + i] * out[j]
        out[i] = total / precision[i * k + i]
