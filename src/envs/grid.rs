//! What the grid worlds share: the move map and cell arithmetic (young2022 spec §1).

/// `[drow, dcol]` for actions 0..5: no-op, up, left, down, right.
pub const MOVES: [[i32; 2]; 5] = [[0, 0], [-1, 0], [0, -1], [1, 0], [0, 1]];

/// A cell as `[row, col]`.
pub type Cell = [i32; 2];

/// The cell reached by `action`, clipped to the grid.
pub fn moved(pos: Cell, action: usize, g: usize) -> Cell {
    let d = MOVES[action];
    let clip = |x: i32| x.clamp(0, g as i32 - 1);
    [clip(pos[0] + d[0]), clip(pos[1] + d[1])]
}

pub fn flat(cell: Cell, g: usize) -> usize {
    cell[0] as usize * g + cell[1] as usize
}

pub fn unflat(idx: usize, g: usize) -> Cell {
    [(idx / g) as i32, (idx % g) as i32]
}

pub fn on_grid(cell: Cell, g: usize) -> bool {
    cell[0] >= 0 && cell[1] >= 0 && (cell[0] as usize) < g && (cell[1] as usize) < g
}
