// ECharts, imported piece by piece for the wallboard's trends (contacts per
// hour, by category, by county): only these charts and the canvas renderer
// are bundled, and only into the pages that import this module.
import { BarChart, LineChart } from 'echarts/charts'
import { GridComponent, TitleComponent, TooltipComponent } from 'echarts/components'
import * as echarts from 'echarts/core'
import { CanvasRenderer } from 'echarts/renderers'

echarts.use([BarChart, LineChart, GridComponent, TitleComponent, TooltipComponent, CanvasRenderer])

export { echarts }
