// The windows and service categories the call controls offer (DESIGN.md's
// domain words; the same codes as the catalogue's window.* and category.*).
export const WINDOW_CODES = ['meijiang', 'meixian', 'xingning', 'pingyuan', 'jiaoling', 'dabu', 'fengshun', 'wuhua', 'city'] as const
export type WindowCode = (typeof WINDOW_CODES)[number]

export const CATEGORY_CODES = ['information', 'training', 'technology', 'startup', 'market', 'management', 'financing', 'legal', 'other'] as const
